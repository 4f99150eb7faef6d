"""Generators: BigGAN, StyleGAN2 and classifier-free guidance diffusion as Lightning modules."""
