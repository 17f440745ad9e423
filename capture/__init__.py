"""Stage 1 of the pipeline: get pixels. Download videos, decode them, find the Game Boy screen in a
frame and resample it to the native 160x144 grid, and (for the live filter) grab a screen region.
"""
