"""Draws the paper-reproduction figures from an evaluation's figure data.

  python -m cli.plot --results=runs/eval_thyroid [--output=figures/thyroid]

Reads RESULTS/figure_data.npz (written by `cli.evaluate --plots`) and writes PNGs into
--output (default RESULTS/figures): figure1_modes_pca.png and figure4_modes_tsne.png when
an MMOC-GAN method supplied learned modes, figure2_score_histograms.png and
roc_curves.png. Prints each written path, then one `skipped NAME: reason` line per figure
left out. Bad input ends with one `error: ...` line on stderr and exit status 2.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from mmocgan_tf import plots  # noqa: E402

flags.DEFINE_string("results", None, "Results folder holding figure_data.npz.")
flags.DEFINE_string("output", None, "Folder for the PNGs (default: RESULTS/figures).")
flags.mark_flags_as_required(["results"])
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(logging.WARNING)
    notes = []
    try:
        paths = plots.write_figures(FLAGS.results, FLAGS.output, notes=notes)
    except (plots.FigureDataError, OSError) as err:
        print("error: " + " ".join(str(err).split()), file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    for note in notes:
        name, _, reason = note.partition(": ")
        print(f"skipped {name}: {reason}")
    return 0


if __name__ == "__main__":
    app.run(main)
