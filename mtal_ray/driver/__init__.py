"""The active-learning driver: the loop, its persisted state, annotation and tracking."""
