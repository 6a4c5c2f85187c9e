"""One screen per module: Insights (home), Experiments, run detail, compare, and modals."""
