"""Drop-in replacements for other packages' blending functions, built on the public API.

- :mod:`pii_augment.compat.pietorch`: pie-torch's ``blend_dst_numpy``, batched and on the GPU.
"""
