"""gaze3d.viewer: the desktop viewer and the gaze labeling workflow.

Modules are imported on use (VTK and PyVista load with the first of them):
``render.render_scan`` for offscreen screenshots, ``app.ViewerApp`` for the
labeling window, ``session.LabelingSession`` for its scriptable core,
``qt_panel`` for the Qt window. See ``docs/viewer.md``.
"""
