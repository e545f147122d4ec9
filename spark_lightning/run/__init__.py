"""The run: what every command goes through between the command line and its task. The recipe
(which configuration a training gets), value checks, the plan (everything settled once, before
anything is built) and its text, the builders (plan -> objects), the run directory's rules, and
the runtime every command shares (one-line errors, the task wrapper)."""
