"""Exercise protocols: the pacer, the session engine, the calibration runner."""
