/**
 * A problem with what the user asked for or gave us: the CLI prints the message alone
 * (no stack) and exits 2. Anything else is an internal error: stack plus a request to report.
 */
export class UserError extends Error {
  override name = 'UserError';
}
