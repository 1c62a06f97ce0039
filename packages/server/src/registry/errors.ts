/**
 * Errors in the OCI distribution format (`{errors:[{code,message,detail}]}`), which docker, skopeo and containerd
 * understand; the rest of Flotilla uses `{error:{code,message}}` but registry clients would not read that.
 */
export const OCI_ERROR_STATUS = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 400,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  TAG_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  RANGE_INVALID: 416,
  TOOMANYREQUESTS: 429,
} as const;
export type OciErrorCode = keyof typeof OCI_ERROR_STATUS;

export class RegistryError extends Error {
  readonly code: OciErrorCode;
  readonly detail: unknown;
  /** Extra response headers, e.g. `WWW-Authenticate` on 401. */
  readonly headers: Record<string, string>;
  /** The HTTP status when it is not the code's usual one (the spec's codes have no "too large": 413 + DENIED). */
  private readonly statusOverride: number | undefined;

  constructor(
    code: OciErrorCode,
    message: string,
    options: { detail?: unknown; headers?: Record<string, string>; status?: number } = {},
  ) {
    super(message);
    this.name = 'RegistryError';
    this.code = code;
    this.detail = options.detail;
    this.headers = options.headers ?? {};
    this.statusOverride = options.status;
  }

  get status(): number {
    return this.statusOverride ?? OCI_ERROR_STATUS[this.code];
  }

  toBody(): { errors: Array<{ code: string; message: string; detail?: unknown }> } {
    return {
      errors: [
        this.detail === undefined
          ? { code: this.code, message: this.message }
          : { code: this.code, message: this.message, detail: this.detail },
      ],
    };
  }
}
