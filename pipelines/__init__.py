"""The fraud-detection pipeline: DAG definition, compilation and local execution."""
