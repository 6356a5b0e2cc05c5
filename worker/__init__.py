"""Background processing: RQ jobs, the services they call, the worker and scheduler processes."""
