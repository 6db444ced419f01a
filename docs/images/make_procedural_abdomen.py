"""docs/images/volumes_procedural_abdomen.png: labels and one SynthSeg image of procedural torso 0.

    .venv/bin/python docs/images/make_procedural_abdomen.py docs/images/volumes_procedural_abdomen.png
"""
import sys
import numpy as np
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from gaze3d.models.procedural_volumes import procedural_abdomen
from gaze3d.models.volume_data import synthseg_image

lab, names, tissue = procedural_abdomen(0)
img = synthseg_image(lab, np.random.default_rng(1), (2.5,) * 3, tissue)
rng = np.random.default_rng(0)
colours = rng.uniform(0.2, 1.0, (lab.max() + 1, 3))
colours[0] = 0
f, ax = plt.subplots(2, 3, figsize=(11, 6.2))
views = [("axial, z = 50", lambda a: a[:, :, 50].T), ("axial, z = 100", lambda a: a[:, :, 100].T),
         ("coronal, y = 55", lambda a: a[:, 55, ::-1].T)]
for i, (title, sl) in enumerate(views):
    ax[0, i].imshow(colours[sl(lab)], interpolation="nearest")
    ax[0, i].set_title(f"labels, {title}", fontsize=9)
    ax[1, i].imshow(sl(img), cmap="gray", vmin=0, vmax=1)
    ax[1, i].set_title(f"one SynthSeg image, {title}", fontsize=9)
for a in ax.ravel():
    a.set_axis_off()
plt.tight_layout()
plt.savefig(sys.argv[1], dpi=70)
