export interface Address {
  name: string;
  address: string;
}

export interface ParsedAttachment {
  filename: string | undefined;
  contentType: string;
  size: number;
  /** Content-ID without angle brackets, for inline images referenced as `cid:`. */
  contentId: string | undefined;
  inline: boolean;
  content: Buffer;
  /** SHA-256 of `content` (hex), computed with the analysis, off the thread that writes SQLite. */
  sha256?: string;
}

/** What the store needs of a message. Message-IDs are kept without angle brackets. */
export interface ParsedMessage {
  messageId: string | undefined;
  inReplyTo: string | undefined;
  references: string[];
  subject: string | undefined;
  from: Address | undefined;
  replyTo: Address[];
  to: Address[];
  cc: Address[];
  date: Date | undefined;
  text: string | undefined;
  html: string | undefined;
  attachments: ParsedAttachment[];
  /** Set when the parser failed: the message is still stored raw, with this error. */
  parseError: string | undefined;
}
