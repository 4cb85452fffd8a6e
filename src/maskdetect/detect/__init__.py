"""Detection runs over many inputs: images, folders, videos and a camera (`media`), their JSON Lines
log (`log`), and the end-to-end evaluation on a Pascal VOC photo set (`evaluate`)."""
