"""ldif: a TensorFlow 2 / Keras port of Google's LDIF and SIF (Genova et al., ICCV 2019 / CVPR 2020)."""
