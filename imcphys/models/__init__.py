"""Device families, one per file: ``reram.py`` (Stanford RRAM), and more as they land."""

from .reram import StanfordReRAM

__all__ = ["StanfordReRAM"]
