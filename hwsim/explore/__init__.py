"""Design-space exploration: Optuna studies, exhaustive grids, Pareto fronts and reports."""
