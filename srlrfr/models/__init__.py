"""Networks. ``srlrfr.models.catalog`` imports every FNet and SRNet module so
their registry entries exist; the loaders import it for you."""
