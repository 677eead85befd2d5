"""Draws the paper-reproduction figures from an evaluation's figure data.

  mmocgan-plot --results=runs/eval_thyroid [--output=figures/thyroid]

(`python -m cli.plot` in a clone.) Reads RESULTS/figure_data.npz (written by
`mmocgan-evaluate --plots`) and writes PNGs into --output (default RESULTS/figures):
figure1_modes_pca.png and figure4_modes_tsne.png when an MMOC-GAN method supplied learned
modes, figure2_score_histograms.png, roc_curves.png, pr_curves.png and explanations.png
(the attributions of the MMOC-GAN method's highest-scoring test rows). Prints each written
path, then one `skipped NAME: reason` line per figure left out. Bad input ends with one
`error: ...` line on stderr and exit status 2.
"""

import functools

from absl import flags

from mmocgan_tf.cli import app

FLAGS = flags.FLAGS


@functools.cache
def define_flags():
    """Defines the results folder to read and the folder for the figures."""
    flags.DEFINE_string("results", None, "Results folder holding figure_data.npz.")
    flags.DEFINE_string("output", None, "Folder for the PNGs (default: RESULTS/figures).")
    flags.mark_flags_as_required(["results"])


@app.command
def main():
    plots = app.import_extra("mmocgan_tf.evaluation.plots", "plots")  # --help needs no extra
    notes = []
    with app.bad_input(OSError):
        paths = plots.write_figures(FLAGS.results, FLAGS.output, notes=notes)
    for path in paths:
        print(path)
    for note in notes:
        name, _, reason = note.partition(": ")
        print(f"skipped {name}: {reason}")
    return 0


def run():
    """The mmocgan-plot console script."""
    app.run(main, define_flags)


if __name__ == "__main__":
    run()
