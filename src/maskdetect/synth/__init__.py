"""Drawing masks on faces, worn correctly and in MaskedFace-Net's three incorrect ways (`maskdetect synth`)."""
