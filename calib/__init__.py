"""gaze3d.calib"""
