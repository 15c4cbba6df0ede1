"""Example DAGs shipped with nbflow; ``nbflow demo`` runs ``demo_pipeline``."""
