/**
 * The server's HTTP API as the pages call it: JSON requests on the Replicate routes with the
 * bearer token, which is asked for once (on the first 401) and kept for the tab's session.
 */

export interface Prediction {
  id: string;
  status: 'starting' | 'processing' | 'succeeded' | 'failed' | 'canceled';
  input: Record<string, unknown>;
  output: string[] | null;
  error: string | null;
  logs: string;
  created_at: string | null;
  completed_at: string | null;
  metrics?: { predict_time?: number };
  urls: { get: string; cancel: string; stream: string };
}

export interface PredictionPage {
  next: string | null;
  results: Prediction[];
}

/** One input a 422 names (`field` is a path such as `loras.0.scale`). */
export interface InvalidField {
  field: string;
  description: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly fields: InvalidField[],
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

const TOKEN_KEY = 'flux-lora-token';

/** Asks the person for a token (`again`: the last one was refused); undefined when they decline. */
export type TokenPrompt = (again: boolean) => Promise<string | undefined>;

export class Api {
  constructor(private readonly askToken: TokenPrompt) {}

  async json<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    for (;;) {
      const token = sessionStorage.getItem(TOKEN_KEY);
      const headers: Record<string, string> = {};
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      if (token !== null) headers.Authorization = `Bearer ${token}`;
      const response = await fetch(path, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
      if (response.status === 401) {
        const given = await this.askToken(token !== null);
        if (given === undefined) throw new ApiError(401, 'this server needs an API token', []);
        sessionStorage.setItem(TOKEN_KEY, given);
        continue;
      }
      const answer = (await response.json().catch(() => ({}))) as Record<string, unknown>;
      if (!response.ok) {
        const message = typeof answer.detail === 'string' ? answer.detail : `${response.status} ${response.statusText}`;
        throw new ApiError(response.status, message, (answer.invalid_fields as InvalidField[] | undefined) ?? []);
      }
      return answer as T;
    }
  }
}
