"""Pictures of networks: computation graphs (Graphviz), layer summaries, filters and feature maps.

``draw_graph``/``draw_model``/``save_graph`` need only the ``graphviz`` package (rendering needs
the ``dot`` program); ``plot_filters``/``plot_feature_maps`` import matplotlib (the ``viz``
extra) when called.
"""

from .graph import GraphvizNotFoundError, RecordedGraph, collect_graph, draw_graph, draw_model, save_graph
from .plots import plot_feature_maps, plot_filters
from .summary import LayerSummary, ModelSummary, summary

__all__ = [
    "GraphvizNotFoundError", "RecordedGraph", "collect_graph", "draw_graph", "draw_model", "save_graph",
    "plot_filters", "plot_feature_maps", "summary", "ModelSummary", "LayerSummary",
]
