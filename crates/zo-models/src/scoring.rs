//! MeZO's objectives: option-token log-likelihoods, LM loss, classification loss, greedy decoding (issue 3).
