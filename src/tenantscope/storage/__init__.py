"""Event and configuration stores: interfaces in ``base``, one module per backend."""
