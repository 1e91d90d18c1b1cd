"""The LLM tasks' subpackage: JsonNER (registry, task, parser, prompt, schema, shards, examples) and CandidateNER (candidate_task, candidates, label_answer)."""
