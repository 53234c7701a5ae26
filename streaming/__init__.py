"""The stream scorer: a Kafka consumer scoring transactions with the predictor's own code (:mod:`serving.scoring`)."""
