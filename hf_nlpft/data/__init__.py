"""Data loading: built-in corpora read from installed packages."""

from hf_nlpft.data.corpora import CorpusNotInstalledError, list_corpora, load_corpus

__all__ = ["CorpusNotInstalledError", "list_corpora", "load_corpus"]
