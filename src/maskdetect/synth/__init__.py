"""Drawing masks on faces, worn correctly and in MaskedFace-Net's three wrong ways (`maskdetect synth`)."""
