//! Train, evaluate and score CORnet models.
