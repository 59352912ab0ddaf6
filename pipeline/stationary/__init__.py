"""Exact classification of stationary points of shallow ReLU-like networks (theory.md sections 2-8).

Public surface: :func:`classify_batch` (survey use, leading run axis, integer label codes) and
:func:`classify_point` (notebook use, decoded labels); code tables in
:mod:`pipeline.stationary.labels`.
"""

from pipeline.stationary.api import BatchClassification, PointReport, classify_batch, classify_point

__all__ = ["BatchClassification", "PointReport", "classify_batch", "classify_point"]
