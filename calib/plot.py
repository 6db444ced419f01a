"""PNG plot of a validation: targets, selected gaze samples and their means (matplotlib Agg)."""
from __future__ import annotations

import io

import numpy as np

from gaze3d._optional import optional_import


def plot_validation(report, title: str = "Validation: targets vs gaze", size_in=(10.0, 4.6),
                    dpi: int = 90) -> bytes:
    """Render ``report`` (a ValidationReport) and return PNG bytes.

    Left: the tracker's display area in degrees of visual angle (y down, like
    the screen); each target a cross, its selected samples small dots of one
    colour, their mean a circle, annotated with accuracy / RMS-S2S precision
    (red when the target fails). Right: every target's samples relative to
    the target, magnified, with the accuracy threshold as a circle, so the
    systematic offset and the noise are visible.
    """
    # matplotlib (optional, ~0.3 s) only when a plot is asked for: calib imports without it
    matplotlib = optional_import("matplotlib", extra="viewer")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    disp = report.display
    corners = disp.norm_to_deg([[0, 0], [1, 1]])
    fig = Figure(figsize=size_in, dpi=dpi)
    FigureCanvasAgg(fig)
    ax, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.9, 1]})
    ax.add_patch(matplotlib.patches.Rectangle(corners[0], *(corners[1] - corners[0]), fill=False,
                                              lw=1.0, ec="0.5"))
    cmap = matplotlib.colormaps["tab20"]
    lim = report.settings.accuracy_max_deg * 1.5
    for k, t in enumerate(report.targets):
        c = cmap(k % 20)
        tdeg = disp.norm_to_deg([t.x, t.y])[0]
        pts = report.selected.get(t.index)
        if pts is not None and len(pts):
            d = disp.norm_to_deg(pts)
            ax.plot(d[:, 0], d[:, 1], ".", ms=1.0, color=c, alpha=0.35, rasterized=True)
            m = disp.norm_to_deg([t.mean_x, t.mean_y])[0]
            ax.plot(*m, "o", mfc="none", mec=c, ms=7, mew=1.5)
            rel = d - tdeg
            ax2.plot(rel[:, 0], rel[:, 1], ".", ms=1.0, color=c, alpha=0.25, rasterized=True)
            ax2.plot(*(m - tdeg), "o", mfc="none", mec=c, ms=6, mew=1.5)
            lim = max(lim, float(np.nanmax(np.abs(m - tdeg))) * 1.3)
            label = f"{t.accuracy_deg:.2f}° / {t.precision_rms_deg:.2f}°"
        else:
            label = "no data"
        ax.plot(*tdeg, "+", color="k", ms=10, mew=1.5)
        ax.annotate(label, tdeg, textcoords="offset points", xytext=(-22, -14), fontsize=7,
                    color="0.2" if t.passed else "red")
    s = report.summary()
    verdict = "PASS" if report.passed else "FAIL"
    fig.suptitle(f"{title}: accuracy {s['accuracy_deg']:.2f}°, offset ({s['offset_x_deg']:+.2f}°, "
                 f"{s['offset_y_deg']:+.2f}°), precision RMS-S2S {s['precision_rms_deg']:.3f}° "
                 f"SD {s['precision_sd_deg']:.3f}°, data loss {s['data_loss_pct']:.1f}%: {verdict}",
                 fontsize=9)
    ax.set_title("targets (+), gaze samples and their means (o)", fontsize=8)
    ax.set_xlabel("x (deg, right)")
    ax.set_ylabel("y (deg, down)")
    ax.set_aspect("equal")
    pad = 1.5
    ax.set_xlim(corners[0][0] - pad, corners[1][0] + pad)
    ax.set_ylim(corners[1][1] + pad, corners[0][1] - pad)     # screen y grows downwards
    ax.grid(True, lw=0.3, alpha=0.5)
    thr = report.settings.accuracy_max_deg
    ax2.add_patch(matplotlib.patches.Circle((0, 0), thr, fill=False, ls="--", ec="0.4", lw=1.0))
    ax2.plot(0, 0, "+", color="k", ms=12, mew=1.5)
    ax2.set_title(f"samples relative to their target (dashed: {thr:g}° limit)", fontsize=8)
    ax2.set_xlabel("dx (deg)")
    ax2.set_ylabel("dy (deg, down)")
    ax2.set_aspect("equal")
    ax2.set_xlim(-lim, lim)
    ax2.set_ylim(lim, -lim)
    ax2.grid(True, lw=0.3, alpha=0.5)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
