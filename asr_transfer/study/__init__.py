"""Transfer studies: a grid of training arms and data budgets on one target, with curves and plots.

``grid`` runs the study (data, budgets, one fine-tuning run per arm, budget and seed, evaluation,
weight introspection); ``report`` turns its numbers into ``RESULTS.md`` and PNG plots.
"""
