"""The Click layer: parse flags, call the library, print. No docker or pyinfra here."""
