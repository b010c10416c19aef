"""The build stages, one module each; composer/build/stages/sequence.py lists them in order."""
