"""Who is calling and what they may do: authentication, login sessions and the policy. Imports no domain room."""
