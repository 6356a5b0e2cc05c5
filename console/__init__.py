"""Human handoff: the support staff console."""
