"""srlrfr: low-resolution face recognition with identity-preserved face hallucination."""
__version__ = "0.1.0"
