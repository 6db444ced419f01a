"""gaze3d.viewer"""
