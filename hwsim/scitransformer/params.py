"""Parameter count of an AlphaFold2 monomer as OpenFold builds it, per module, from the
architecture in the ``evoformer`` spec.

Every count is weights plus biases of the layers the modules create (read in
aqlaboratory/openfold, ``openfold/model/*.py``; the commits are in docs/scitransformer.md):

- a linear layer ``i -> o`` has ``i o`` weights and ``o`` biases unless built without bias (the
  attention's query, key and value projections, the pair-bias and triangle-bias projections);
- a layer norm over ``c`` channels has ``2 c`` (scale and offset);
- gated attention (OpenFold's ``Attention``, ``H`` heads of ``D``) on queries of ``c_q`` and
  keys/values of ``c_k``: Q ``c_q HD``, K and V ``c_k HD`` each (no bias), the output
  ``HD -> c_q`` with bias and the gate ``c_q -> HD`` with bias; the template pointwise
  attention is built without the gate;
- global column attention (extra-MSA stack): Q ``c HD`` (no bias), one shared K and V of ``D``
  each (``c D``, no bias), gate ``c -> HD`` and output ``HD -> c`` with bias;
- the structure module's 8 layers share one set of weights (one IPA, one transition, one
  backbone update, one angle resnet), so its count does not grow with the layers.

The input feature widths are fixed by OpenFold's featurisation, not by the architecture, and
are constants here (config.py ``model.input_embedder`` tf_dim 22, msa_dim 49, relpos_k 32;
``recycling_embedder`` no_bins 15; ``extra_msa_embedder`` c_in 25;
``template_angle_embedder`` c_in 57; ``template_pair_embedder`` c_in 88; ``heads``: lddt 50
bins, distogram 64 bins, masked MSA 23 classes, experimentally resolved 37 atoms).
"""

from __future__ import annotations

#: target-feature, MSA-feature and extra-MSA-feature widths, relative-position window
TF_DIM, MSA_DIM, EXTRA_MSA_DIM, RELPOS_K = 22, 49, 25, 32
#: recycled-distance bins; template angle and pair feature widths
RECYCLE_BINS, TEMPLATE_ANGLE_DIM, TEMPLATE_PAIR_DIM = 15, 57, 88
#: output widths of the auxiliary heads: pLDDT bins, distogram bins, MSA classes, atoms
LDDT_BINS, DISTOGRAM_BINS, MSA_CLASSES, ATOM_TYPES = 50, 64, 23, 37
#: backbone update: 3 quaternion + 3 translation outputs
BACKBONE_OUT = 6

#: the modules, in the order of the tables and metrics
MODULES = ("input_embedder", "recycling_embedder", "template", "extra_msa", "evoformer",
           "structure_module", "heads")

LABELS = {
    "input_embedder": "input embedder (target, MSA and relative-position features)",
    "recycling_embedder": "recycling embedder (distance bins, two layer norms)",
    "template": "template stack (angle and pair embedders, pair stack, pointwise attention)",
    "extra_msa": "extra-MSA embedder and stack",
    "evoformer": "Evoformer stack and its single-representation projection",
    "structure_module": "structure module (IPA, transition, backbone update, angle resnet)",
    "heads": "auxiliary heads (pLDDT, distogram, masked MSA, experimentally resolved)",
}


def linear(i: int, o: int, bias: bool = True) -> int:
    return i * o + (o if bias else 0)


def layer_norm(c: int) -> int:
    return 2 * c


def attention(c_q: int, c_kv: int, heads: int, dim: int, gating: bool = True) -> int:
    hd = heads * dim
    return (c_q * hd + 2 * c_kv * hd + linear(hd, c_q)
            + (linear(c_q, hd) if gating else 0))


def global_attention(c: int, heads: int, dim: int) -> int:
    hd = heads * dim
    return c * hd + 2 * c * dim + linear(c, hd) + linear(hd, c)


def transition(c: int, factor: int) -> int:
    return layer_norm(c) + linear(c, factor * c) + linear(factor * c, c)


def outer_product_mean(c_m: int, c_z: int, c: int) -> int:
    return layer_norm(c_m) + 2 * linear(c_m, c) + linear(c * c, c_z)


def triangle_multiplication(c_z: int, c: int) -> int:
    """Gated projections a and b (two linears each), the output gate, the output projection,
    the input and output layer norms."""
    return (layer_norm(c_z) + layer_norm(c) + 4 * linear(c_z, c) + linear(c_z, c_z)
            + linear(c, c_z))


def triangle_attention(c_z: int, heads: int, dim: int) -> int:
    return layer_norm(c_z) + linear(c_z, heads, bias=False) + attention(c_z, c_z, heads, dim)


def msa_row_attention(c_m: int, c_z: int, heads: int, dim: int) -> int:
    """Row attention with pair bias: both layer norms, the pair-bias projection, the
    attention."""
    return (layer_norm(c_m) + layer_norm(c_z) + linear(c_z, heads, bias=False)
            + attention(c_m, c_m, heads, dim))


def block_core(evo, c_m: int) -> int:
    """What an Evoformer and an extra-MSA block share: MSA transition, outer product mean,
    the two triangle multiplications and attentions, the pair transition."""
    c_z = evo.c_z
    return (transition(c_m, evo.msa_transition_factor)
            + outer_product_mean(c_m, c_z, evo.opm_hidden)
            + 2 * triangle_multiplication(c_z, evo.tri_mul_hidden)
            + 2 * triangle_attention(c_z, evo.pair_heads, evo.pair_head_dim)
            + transition(c_z, evo.pair_transition_factor))


def evoformer_block(evo) -> int:
    return (msa_row_attention(evo.c_m, evo.c_z, evo.msa_heads, evo.msa_head_dim)
            + layer_norm(evo.c_m) + attention(evo.c_m, evo.c_m, evo.msa_heads, evo.msa_head_dim)
            + block_core(evo, evo.c_m))


def extra_msa_block(evo) -> int:
    c = evo.c_e
    h, d = evo.extra_msa_heads, evo.extra_msa_head_dim
    col = (global_attention(c, h, d) if evo.extra_msa_global_column
           else attention(c, c, h, d))
    return msa_row_attention(c, evo.c_z, h, d) + layer_norm(c) + col + block_core(evo, c)


def template_stack(evo) -> int:
    if not evo.templates:
        return 0
    c_t = evo.c_t
    block = (2 * triangle_attention(c_t, evo.template_heads, evo.template_head_dim)
             + 2 * triangle_multiplication(c_t, evo.template_tri_mul_hidden)
             + transition(c_t, evo.template_transition_factor))
    return (linear(TEMPLATE_ANGLE_DIM, evo.c_m) + linear(evo.c_m, evo.c_m)
            + linear(TEMPLATE_PAIR_DIM, c_t)
            + evo.template_blocks * block + layer_norm(c_t)
            + attention(evo.c_z, c_t, evo.template_pointwise_heads,
                        evo.template_pointwise_head_dim, gating=False))


def invariant_point_attention(evo) -> int:
    c_s, h, c = evo.c_s, evo.ipa_heads, evo.ipa_head_dim
    pq, pv = evo.ipa_qk_points, evo.ipa_v_points
    return (linear(c_s, h * c) + linear(c_s, 2 * h * c)
            + linear(c_s, h * pq * 3) + linear(c_s, h * (pq + pv) * 3)
            + linear(evo.c_z, h) + h                       # pair bias; per-head point weights
            + linear(h * (evo.c_z + c + 4 * pv), c_s))     # scalar, point (xyz + norm), pair


def structure_module(evo) -> int:
    c_s, r = evo.c_s, evo.angle_resnet_hidden
    return (layer_norm(c_s) + layer_norm(evo.c_z) + linear(c_s, c_s)
            + invariant_point_attention(evo) + layer_norm(c_s)
            + evo.structure_transition_layers * 3 * linear(c_s, c_s) + layer_norm(c_s)
            + linear(c_s, BACKBONE_OUT)
            + 2 * linear(c_s, r) + evo.angle_resnet_blocks * 2 * linear(r, r)
            + linear(r, 2 * evo.torsion_angles))


def heads(evo) -> int:
    h = evo.lddt_hidden
    lddt = layer_norm(evo.c_s) + linear(evo.c_s, h) + linear(h, h) + linear(h, LDDT_BINS)
    return (lddt + linear(evo.c_z, DISTOGRAM_BINS) + linear(evo.c_m, MSA_CLASSES)
            + linear(evo.c_s, ATOM_TYPES))


def count(evo) -> dict[str, int]:
    """Parameters of each module of ``evo`` (an ``evoformer`` spec)."""
    c_m, c_z = evo.c_m, evo.c_z
    return {
        "input_embedder": (2 * linear(TF_DIM, c_z) + linear(TF_DIM, c_m) + linear(MSA_DIM, c_m)
                           + linear(2 * RELPOS_K + 1, c_z)),
        "recycling_embedder": linear(RECYCLE_BINS, c_z) + layer_norm(c_m) + layer_norm(c_z),
        "template": template_stack(evo),
        "extra_msa": (linear(EXTRA_MSA_DIM, evo.c_e)
                      + evo.extra_msa_blocks * extra_msa_block(evo)),
        "evoformer": evo.evoformer_blocks * evoformer_block(evo) + linear(c_m, evo.c_s),
        "structure_module": structure_module(evo),
        "heads": heads(evo),
    }
