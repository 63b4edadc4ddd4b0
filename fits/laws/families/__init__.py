"""The law families: one module each, registered by name in fits.laws.registry."""
