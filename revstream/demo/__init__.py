"""The main job (`revstream demo`): the whole pipeline on the embedded stack, ending in a report."""
