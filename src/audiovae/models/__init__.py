"""Model families: deterministic outer autoencoders and the inner VAE."""
