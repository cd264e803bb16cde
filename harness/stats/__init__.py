"""How sure are we: the statistics behind "is model A better than model B, and how sure?".

Pure numpy functions over battles (harness.battles gives them; `frame.from_battles` turns them into
arrays with their question kept). Nothing here reads the store; the thin loader that fetches answer
texts for style features is harness.store.stats, called by harness.api.

- frame      battles as arrays, each with the question (set, question id) it was fought on
- clustered  bootstrap of Bradley-Terry ratings resampling questions (default) or battles
- paired     A vs B per question: paired win rate, sign and permutation tests, power, Holm marks
- ties       Davidson's Bradley-Terry with a tie parameter, fitted by maximum likelihood
- style      contextual Bradley-Terry with style covariates (Arena's style control); LC win rate SE
- quality    separability, rank agreement with a reference ranking, held-out Brier score
- probes     gaming probes: answers rewritten to be longer or more markdown-heavy, and a null model
"""
