"""What happens on each input: decode, authorize, validate, fire the trigger, queue
side effects. Nothing here talks to lightningd except through `handlers.frame.effects`."""

__version__ = "0.1.0"
