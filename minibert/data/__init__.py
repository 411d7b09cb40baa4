"""Data: BERT's pretraining examples, the fine-tuning file formats, and padding into batches."""
