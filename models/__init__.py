"""gaze3d.models"""
