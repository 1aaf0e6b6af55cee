"""SpeechLM Playground: talk to speech language models and cascades, compare them, vote blind."""

__version__ = "0.1.0"
