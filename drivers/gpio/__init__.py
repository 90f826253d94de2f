"""Door, tamper and service-switch inputs and bezel lights on GPIO lines, through gpiozero."""
