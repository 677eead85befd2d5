"""The paper-reproduction figures, drawn headless (matplotlib Agg) into PNG files.

figure_data is the file format `cli.evaluate --plots` writes for fold 0; modes and scores
draw the figures; explanations draws the attributions of the highest-scoring rows; write
draws every figure one such file supports; heldout draws the pictures of one training
run's held-out rows (cli.train). The Agg backend is
chosen here, before any submodule imports pyplot, so no display is needed and no global
style changes. matplotlib is an optional dependency (the `plots` extra): import this
package only on plotting code paths.
"""

import matplotlib

matplotlib.use("Agg")

from mmocgan_tf.evaluation.plots.explanations import (  # noqa: E402
    EXPLANATIONS,
    NATS,
    SCORE_UNITS,
    attribution_unit,
    explanation_figure,
    top_explanations,
    top_rows,
)
from mmocgan_tf.evaluation.plots.figure_data import (  # noqa: E402
    FIGURE_DATA,
    REQUIRED,
    FigureData,
    FigureDataError,
    load_figure_data,
)
from mmocgan_tf.evaluation.plots.heldout import (  # noqa: E402
    heldout_explanations,
    heldout_figures,
)
from mmocgan_tf.evaluation.plots.modes import figure1_modes_pca, figure4_modes_tsne  # noqa: E402
from mmocgan_tf.evaluation.plots.scores import (  # noqa: E402
    figure2_score_histogram_grid,
    figure2_score_histograms,
    pr_curves,
    roc_curves,
)
from mmocgan_tf.evaluation.plots.write import (  # noqa: E402
    FIGURE1,
    FIGURE2,
    FIGURE4,
    PR,
    ROC,
    write_figures,
)

__all__ = ["EXPLANATIONS", "FIGURE1", "FIGURE2", "FIGURE4", "FIGURE_DATA", "NATS", "PR",
           "REQUIRED", "ROC", "SCORE_UNITS", "FigureData", "FigureDataError",
           "attribution_unit", "explanation_figure", "figure1_modes_pca",
           "figure2_score_histogram_grid", "figure2_score_histograms", "figure4_modes_tsne",
           "heldout_explanations", "heldout_figures", "load_figure_data", "pr_curves",
           "roc_curves", "top_explanations", "top_rows", "write_figures"]
