"""The turn layer: when the user's turn is over (VAD, end-of-turn rules and models) and what the reply does."""
