"""Using a trained model: load and decode (``model``), ``transcribe``, ``evaluate`` (WER/CER) and
``export`` (a stand-alone ``.nemo``)."""
