/**
 * Deterministic mail for `npm run bench`: the same seed gives the same bytes on every machine.
 *
 * The mix (about 70 MB per 1000 messages): about half plain text, a third multipart/alternative
 * text+HTML, a fifth multipart/mixed with 1 to 3 base64 attachments of 10 KB to 1 MB (bytes from
 * the PRNG, so they do not compress); independently a third have RFC 2047 subjects (B and Q,
 * UTF-8 and ISO-8859-1) and a third are replies (In-Reply-To/References to earlier Message-IDs).
 * Bodies are English, German or French, sent as 7bit, 8bit or quoted-printable in US-ASCII,
 * UTF-8 or ISO-8859-1; some lines start with "." (POP3 dot-stuffing). Every line ends in CRLF.
 *
 * No Math.random anywhere: a seeded sfc32 PRNG drives every choice and every attachment byte.
 * Messages come from a stream (`BenchMailGenerator.next()`), so the first 1000 of a 5000-message
 * mailbox are the 1000-message mailbox, and a large mailbox never has to sit in memory.
 */

// ---------------------------------------------------------------------------------------------
// PRNG

/** sfc32 seeded through splitmix32: small, fast, good enough statistics, 32-bit integer maths only. */
export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    let s = seed >>> 0;
    const splitmix = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = splitmix();
    this.b = splitmix();
    this.c = splitmix();
    this.d = splitmix();
    for (let i = 0; i < 15; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** [0, 1) */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** An integer in [min, max], both included. */
  int(min: number, max: number): number {
    return min + Math.floor(this.float() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[this.int(0, items.length - 1)] as T;
  }

  /** `n` pseudo-random bytes. */
  bytes(n: number): Buffer {
    const words = new Uint32Array(Math.ceil(n / 4));
    for (let i = 0; i < words.length; i++) words[i] = this.u32();
    return Buffer.from(words.buffer, 0, n);
  }

  hex(chars: number): string {
    let out = '';
    while (out.length < chars) out += this.u32().toString(16).padStart(8, '0');
    return out.slice(0, chars);
  }
}

// ---------------------------------------------------------------------------------------------
// encodings

const CRLF = '\r\n';

/** Base64 in lines of 76 characters, CRLF after every line (RFC 2045 section 6.8). */
export function base64Lines(data: Buffer): string {
  const parts: string[] = [];
  const CHUNK = 57 * 1024; // 57 bytes = one 76-character line
  for (let offset = 0; offset < data.length; offset += CHUNK) {
    const b64 = data.subarray(offset, Math.min(offset + CHUNK, data.length)).toString('base64');
    for (let i = 0; i < b64.length; i += 76) parts.push(b64.slice(i, i + 76));
  }
  return parts.join(CRLF) + CRLF;
}

const HEX = '0123456789ABCDEF';
const hexByte = (b: number): string => `=${HEX[b >> 4]}${HEX[b & 15]}`;

/** Quoted-printable (RFC 2045 section 6.7) of text whose lines end in CRLF; soft breaks at 76. */
export function quotedPrintable(data: Buffer): string {
  const lines: string[] = [];
  let line = '';
  for (let i = 0; i < data.length; i++) {
    const b = data[i] as number;
    if (b === 0x0d && data[i + 1] === 0x0a) {
      lines.push(line);
      line = '';
      i++;
      continue;
    }
    const atLineEnd = i + 1 >= data.length || (data[i + 1] === 0x0d && data[i + 2] === 0x0a);
    const literal = (b >= 33 && b <= 126 && b !== 61) || ((b === 32 || b === 9) && !atLineEnd);
    const token = literal ? String.fromCharCode(b) : hexByte(b);
    if (line.length + token.length > 75) {
      lines.push(`${line}=`);
      line = '';
    }
    line += token;
  }
  if (line.length > 0) lines.push(line);
  return lines.join(CRLF) + CRLF;
}

type Charset = 'UTF-8' | 'ISO-8859-1';

function isLatin1(text: string): boolean {
  for (const ch of text) if ((ch.codePointAt(0) ?? 0) > 0xff) return false;
  return true;
}

const isAscii = (text: string): boolean => /^[\x20-\x7e]*$/.test(text);

function charsetBytes(text: string, charset: Charset): Buffer {
  return Buffer.from(text, charset === 'UTF-8' ? 'utf8' : 'latin1');
}

/** Q encoding of one encoded-word's bytes (RFC 2047 section 4.2, the strict set for any header). */
function qWord(bytes: Buffer): string {
  let out = '';
  for (const b of bytes) {
    if (b === 0x20) out += '_';
    else if ((b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b === 0x21 || b === 0x2a || b === 0x2b || b === 0x2d || b === 0x2f) out += String.fromCharCode(b);
    else out += hexByte(b);
  }
  return out;
}

/**
 * RFC 2047 encoded-words for `text`: whole characters per word, each word at most 75 characters
 * (section 2), so a long subject becomes several words, folded by the caller.
 */
export function encodeWords(text: string, encoding: 'B' | 'Q', charset: Charset): string[] {
  const prefix = `=?${charset}?${encoding}?`;
  const room = 75 - prefix.length - 2;
  const encode = (s: string): string => {
    const bytes = charsetBytes(s, charset);
    return encoding === 'B' ? bytes.toString('base64') : qWord(bytes);
  };
  const words: string[] = [];
  let current = '';
  for (const ch of text) {
    if (current !== '' && encode(current + ch).length > room) {
      words.push(`${prefix}${encode(current)}?=`);
      current = '';
    }
    current += ch;
  }
  if (current !== '') words.push(`${prefix}${encode(current)}?=`);
  return words;
}

/** A header line, folded before each of `words` when the line would pass 78 characters. */
function foldedHeader(name: string, words: readonly string[]): string {
  let out = `${name}:`;
  let lineLength = out.length;
  for (const word of words) {
    if (lineLength + 1 + word.length > 78 && lineLength > name.length + 1) {
      out += `${CRLF} ${word}`;
      lineLength = 1 + word.length;
    } else {
      out += ` ${word}`;
      lineLength += 1 + word.length;
    }
  }
  return out + CRLF;
}

/** Wraps text (paragraphs separated by blank lines) at `width` characters, CRLF line ends. */
function wrap(paragraphs: readonly string[], width = 72): string {
  const out: string[] = [];
  for (const paragraph of paragraphs) {
    for (const rawLine of paragraph.split('\n')) {
      let line = '';
      for (const word of rawLine.split(' ')) {
        if (line !== '' && line.length + 1 + word.length > width) {
          out.push(line);
          line = word;
        } else {
          line = line === '' ? word : `${line} ${word}`;
        }
      }
      out.push(line);
    }
    out.push('');
  }
  return out.join(CRLF);
}

const escapeHtml = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

// ---------------------------------------------------------------------------------------------
// vocabulary

type Lang = 'en' | 'de' | 'fr';

const WORDS: Record<Lang, readonly string[]> = {
  en: `the printer on the third floor has stopped working again since this morning and nobody can
print anything we tried restarting it but the display still shows an error could you please send
someone to have a look invoice order delivery account password reset laptop screen keyboard mouse
network drive shared folder access permission request approval manager team meeting schedule
tomorrow afternoon next week urgent important follow up ticket reference number customer supplier
contract renewal price quote discount payment overdue reminder refund return shipping address
package tracking warehouse stock backorder replacement warranty repair technician appointment
confirm cancel update attached document spreadsheet report quarterly budget forecast figures
server outage email calendar phone headset VPN connection slow timeout login error message
browser update software license installation migration backup restore database export import
thanks regards best kind please let me know if you need anything else as soon as possible`.split(/\s+/),
  de: `der Drucker im zweiten Stock funktioniert seit heute Morgen nicht mehr und niemand kann
drucken wir haben ihn neu gestartet aber die Anzeige zeigt weiterhin einen Fehler könnten Sie bitte
jemanden vorbeischicken Rechnung Bestellung Lieferung Konto Passwort zurücksetzen Bildschirm Tastatur
Maus Netzlaufwerk Zugriff Berechtigung Genehmigung Besprechung nächste Woche dringend wichtig
Rückfrage Kundennummer Lieferant Vertrag Verlängerung Preis Angebot Rabatt Zahlung Mahnung
Erstattung Rücksendung Größe Übersicht Änderung Bestätigung Kündigung Straße schön für über
Grüße freundlichen mit vielen Dank im Voraus Störung Anmeldung Fehlermeldung Sicherung Lösung`.split(/\s+/),
  fr: `l'imprimante du troisième étage ne fonctionne plus depuis ce matin et personne ne peut
imprimer nous l'avons redémarrée mais l'écran affiche toujours une erreur pourriez-vous envoyer
quelqu'un facture commande livraison compte mot de passe réinitialiser écran clavier souris accès
lecteur réseau autorisation réunion équipe la semaine prochaine urgent très important déjà reçu
référence client fournisseur contrat renouvellement prix devis remise paiement relance remboursement
retour adresse colis entrepôt garantie réparation technicien rendez-vous confirmer annuler document
ci-joint rapport trimestriel budget prévisions problème d'accès à où été créé société élève merci
cordialement bien à vous n'hésitez pas à me contacter dès que possible`.split(/\s+/),
};

const SIGNOFF: Record<Lang, readonly string[]> = {
  en: ['Thanks,', 'Best regards,', 'Kind regards,', 'Cheers,', 'Thank you in advance,'],
  de: ['Viele Grüße', 'Mit freundlichen Grüßen', 'Danke und Gruß', 'Beste Grüße'],
  fr: ['Cordialement,', 'Bien à vous,', 'Merci d\'avance,', 'Bonne journée,'],
};

const DOT_LINES = ['.NET Framework 4.8 update failed with error 0x800f0922', '...', '. (see below)', '.htaccess was overwritten'];

const FIRST = ['Alice', 'Bob', 'Carol', 'David', 'Emma', 'Frank', 'Grace', 'Hannah', 'Ivan', 'Julia', 'Kevin', 'Laura',
  'Jörg', 'Jürgen', 'Élodie', 'François', 'Søren', 'Zoë', 'José', 'Łukasz', 'Ágnes', 'Björn', 'Chloé', 'Renée'];
const LAST = ['Smith', 'Johnson', 'Brown', 'Taylor', 'Wilson', 'Martin', 'Dubois', 'Schmidt', 'Müller', 'Weiß',
  'García', 'Østergaard', 'Wiśniewski', 'Nagy', 'Lefèvre', 'O\'Brien', 'Andersson', 'Rossi'];
const DOMAINS = ['customer.example', 'supplier.example.com', 'mail.example.org', 'acme-corp.example', 'kunde.example.de',
  'client.example.fr', 'gmail.example', 'outlook.example'];
const MAILERS = ['Microsoft Outlook 16.0', 'Mozilla Thunderbird 115.6.0', 'Apple Mail (2.3731.700.6)', 'Roundcube Webmail/1.6.5',
  'Evolution 3.50.2', 'K-9 Mail for Android', 'Postbox 7.0.60'];

const SUBJECTS_ASCII = [
  'Printer on floor {n} not working', 'Invoice {num} is wrong', 'Password reset for {first}', 'Order #{num}: delivery delayed',
  'VPN disconnects every {n} minutes', 'Request: new laptop for {first}', 'Cannot access shared drive \\\\fs{n}\\projects',
  'Meeting notes {date}', 'Refund for order {num}', 'Question about contract {num}', 'Outlook keeps asking for my password',
  'Urgent: server room temperature alarm', 'Access request for the finance folder', 'Broken monitor in room {n}{n}',
  'Quote for {n}0 laptops', 'Shipping address change for order {num}', 'Login error after update', 'Payment reminder {num}',
];
/** Non-ASCII subjects for RFC 2047; the first ones also fit ISO-8859-1. */
const SUBJECTS_INTL = [
  'Rechnung Nr. {num} für März', 'Drucker im {n}. Stock druckt nicht, bitte prüfen', 'Rückfrage zur Bestellung {num}',
  'Kündigung des Vertrags {num}', 'Größenänderung der Lieferung {num}', 'Problème d\'accès au réseau', 'Réunion de l\'équipe le {date}',
  'Commande n° {num} non reçue', 'Facture erronée : référence {num}', 'Søknad om tilgang til fellesmappe',
  'Zamówienie {num}: prośba o zwrot', 'Заказ №{num} не доставлен', '注文番号{num}の確認', 'Παραγγελία {num}: καθυστέρηση',
  '🔥 Printer on fire again (floor {n})', 'Lieferung {num} – Verzögerung “dringend”',
];

interface Attachment { filename: string; type: string }
const ATTACHMENTS: readonly ((r: Prng) => Attachment)[] = [
  (r) => ({ filename: `Invoice-${r.int(2026000, 2026999)}.pdf`, type: 'application/pdf' }),
  (r) => ({ filename: `IMG_${r.int(1000, 9999)}.jpg`, type: 'image/jpeg' }),
  (r) => ({ filename: `Screenshot 2026-0${r.int(1, 9)}-1${r.int(0, 9)} at 10.${r.int(10, 59)}.png`, type: 'image/png' }),
  (r) => ({ filename: `report-Q${r.int(1, 4)}.xlsx`, type: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet' }),
  (r) => ({ filename: `logs-${r.int(100000, 999999)}.zip`, type: 'application/zip' }),
  (r) => ({ filename: `Übersicht März ${r.int(1, 31)}.pdf`, type: 'application/pdf' }),
  (r) => ({ filename: `contrat signé ${r.int(100, 999)}.docx`, type: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document' }),
  () => ({ filename: 'data.bin', type: 'application/octet-stream' }),
];

// ---------------------------------------------------------------------------------------------
// the generator

export type MessageKind = 'plain' | 'alternative' | 'mixed';

export interface GeneratedMessage {
  raw: Buffer;
  messageId: string;
  kind: MessageKind;
  encodedSubject: boolean;
  reply: boolean;
  attachments: number;
}

export interface MixStats {
  count: number;
  bytes: number;
  plain: number;
  alternative: number;
  mixed: number;
  attachments: number;
  /** Decoded attachment bytes (their base64 is about 4/3 of this on the wire). */
  attachmentBytes: number;
  encodedSubjects: number;
  replies: number;
  largest: number;
}

export function emptyStats(): MixStats {
  return { count: 0, bytes: 0, plain: 0, alternative: 0, mixed: 0, attachments: 0, attachmentBytes: 0, encodedSubjects: 0, replies: 0, largest: 0 };
}

interface Sent {
  messageId: string;
  references: string[];
  subject: string;
  from: string;
  date: string;
  quote: string[];
}

interface Person { name: string; address: string }

const DAY = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTH = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const ZONES = [0, 60, 120, -300, -420, 330, 540];

/** An RFC 5322 date of `epochMs` shown in a zone `offsetMinutes` from UTC. */
function rfc5322Date(epochMs: number, offsetMinutes: number): string {
  const d = new Date(epochMs + offsetMinutes * 60_000);
  const pad = (n: number) => String(n).padStart(2, '0');
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  return `${DAY[d.getUTCDay()]}, ${d.getUTCDate()} ${MONTH[d.getUTCMonth()]} ${d.getUTCFullYear()} `
    + `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} ${sign}${pad(Math.floor(abs / 60))}${pad(abs % 60)}`;
}

const ASCII_FOLD: Record<string, string> = { ä: 'ae', ö: 'oe', ü: 'ue', ß: 'ss', é: 'e', è: 'e', ç: 'c', ø: 'o', ł: 'l', ś: 's', á: 'a', ë: 'e', å: 'a', à: 'a' };
const localPart = (s: string): string => s.toLowerCase().replace(/./gu, (c) => ASCII_FOLD[c] ?? c).replace(/[^a-z0-9]+/g, '');

export class BenchMailGenerator {
  readonly stats = emptyStats();
  private readonly rng: Prng;
  /** Attachment bytes come from their own stream, so the sizes do not shift every later choice. */
  private readonly content: Prng;
  private readonly sent: Sent[] = [];
  private index = 0;
  private clock = Date.UTC(2026, 0, 5, 8, 0, 0);

  constructor(seed = 1) {
    this.rng = new Prng(seed);
    this.content = new Prng(seed ^ 0x6a09e667);
  }

  next(): GeneratedMessage {
    const r = this.rng;
    const i = this.index++;
    this.clock += r.int(5, 900) * 1000;
    const roll = r.float();
    const kind: MessageKind = roll < 0.2 ? 'mixed' : roll < 0.533 ? 'alternative' : 'plain';
    const parent = this.sent.length > 0 && r.chance(1 / 3) ? this.sent[Math.max(0, this.sent.length - 1 - r.int(0, 60))] : undefined;
    const lang: Lang = r.chance(0.7) ? 'en' : r.chance(0.5) ? 'de' : 'fr';

    const from = this.person();
    const to: Person = { name: 'Support', address: 'support@helpdesk.example' };
    const zone = r.pick(ZONES);
    const date = rfc5322Date(this.clock, zone);
    const messageId = `${this.clock.toString(36)}.${i}.${r.hex(12)}@${from.address.split('@')[1] ?? 'example.com'}`;

    // Subject: a thread's subject is chosen once; replies keep it, so about a third of all
    // messages carry a non-ASCII (RFC 2047) subject.
    const subject = parent !== undefined
      ? `${r.chance(0.8) ? 'Re' : lang === 'de' ? 'AW' : 'RE'}: ${parent.subject.replace(/^(Re|AW|RE): /, '')}`
      : this.fill(r.chance(0.3) ? r.pick(SUBJECTS_INTL) : r.pick(SUBJECTS_ASCII));
    const encodedSubject = !isAscii(subject);

    const headers: string[] = [];
    headers.push(`Return-Path: <${from.address}>${CRLF}`);
    headers.push(`Delivered-To: ${to.address}${CRLF}`);
    const relay = `mail-out${r.int(1, 9)}.${from.address.split('@')[1] ?? 'example.com'}`;
    headers.push(`Received: from ${relay} (${relay} [198.51.100.${r.int(1, 254)}])${CRLF}\tby mx.helpdesk.example (Postfix) with ESMTPS id ${r.hex(10).toUpperCase()}${CRLF}\tfor <${to.address}>; ${date}${CRLF}`);
    headers.push(`Received: from [10.${r.int(0, 255)}.${r.int(0, 255)}.${r.int(1, 254)}] by ${relay} with ESMTPSA id ${r.hex(16)}${CRLF}\tfor <${to.address}>; ${date}${CRLF}`);
    if (r.chance(0.4)) {
      const sig = r.bytes(256).toString('base64');
      headers.push(`DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=${from.address.split('@')[1]}; s=s${r.int(1, 3)};${CRLF}\th=from:to:subject:date:message-id:mime-version; bh=${r.bytes(32).toString('base64')};${CRLF}`
        + `\tb=${sig.slice(0, 70)}${CRLF}\t ${sig.slice(70, 140)}${CRLF}\t ${sig.slice(140, 210)}${CRLF}\t ${sig.slice(210)}${CRLF}`);
    }
    headers.push(`From: ${this.address(from)}${CRLF}`);
    headers.push(`To: ${this.address(to)}${CRLF}`);
    if (r.chance(0.25)) headers.push(`Cc: ${this.address(this.person())}, ${this.address(this.person())}${CRLF}`);
    headers.push(encodedSubject ? this.encodedSubject(subject) : foldedHeader('Subject', subject.split(' ')));
    headers.push(`Date: ${date}${CRLF}`);
    headers.push(`Message-ID: <${messageId}>${CRLF}`);
    let references: string[] = [];
    if (parent !== undefined) {
      references = [...parent.references, parent.messageId].slice(-10);
      headers.push(`In-Reply-To: <${parent.messageId}>${CRLF}`);
      headers.push(foldedHeader('References', references.map((id) => `<${id}>`)));
    }
    headers.push(`MIME-Version: 1.0${CRLF}`);
    headers.push(`${r.chance(0.5) ? 'X-Mailer' : 'User-Agent'}: ${r.pick(MAILERS)}${CRLF}`);

    // Body text; a reply quotes the start of its parent.
    const paragraphs = this.paragraphs(lang, r.int(1, 6));
    paragraphs.push(`${r.pick(SIGNOFF[lang])}\n${from.name}`);
    const quote = parent !== undefined ? [`On ${parent.date}, ${parent.from} wrote:`, ...parent.quote.map((l) => `> ${l}`)] : [];
    const text = wrap(paragraphs) + (quote.length > 0 ? quote.join(CRLF) + CRLF : '');

    let body: string;
    let attachments = 0;
    if (kind === 'plain') {
      body = this.textPart(text, lang, true);
    } else if (kind === 'alternative') {
      body = this.alternative(text, paragraphs, quote, i);
    } else {
      const boundary = `----=_Part_${i}_${r.hex(8)}.${r.hex(13)}`;
      const inner = r.chance(0.5) ? this.alternative(text, paragraphs, quote, i) : this.textPart(text, lang, false);
      const parts = [inner];
      attachments = r.int(1, 3);
      for (let a = 0; a < attachments; a++) parts.push(this.attachmentPart());
      body = `Content-Type: multipart/mixed;${CRLF}\tboundary="${boundary}"${CRLF}${CRLF}This is a multi-part message in MIME format.${CRLF}`
        + parts.map((p) => `${CRLF}--${boundary}${CRLF}${p}`).join('') + `${CRLF}--${boundary}--${CRLF}`;
    }

    const raw = Buffer.from(headers.join('') + body, 'latin1');
    const firstLines = text.split(CRLF).filter((l) => l !== '').slice(0, 4);
    this.sent.push({ messageId, references, subject, from: this.address(from, false), date, quote: firstLines });
    if (this.sent.length > 200) this.sent.shift();

    const s = this.stats;
    s.count += 1;
    s.bytes += raw.length;
    s[kind] += 1;
    s.attachments += attachments;
    if (encodedSubject) s.encodedSubjects += 1;
    if (parent !== undefined) s.replies += 1;
    s.largest = Math.max(s.largest, raw.length);
    return { raw, messageId, kind, encodedSubject, reply: parent !== undefined, attachments };
  }

  // ---- pieces; every string returned here is "binary" (one char per byte, latin1) ----

  private person(): Person {
    const first = this.rng.pick(FIRST);
    const last = this.rng.pick(LAST);
    return { name: `${first} ${last}`, address: `${localPart(first)}.${localPart(last)}@${this.rng.pick(DOMAINS)}` };
  }

  private address(p: Person, encode = true): string {
    if (!encode) return `${p.name} <${p.address}>`;
    if (!isAscii(p.name)) {
      const charset: Charset = isLatin1(p.name) && this.rng.chance(0.5) ? 'ISO-8859-1' : 'UTF-8';
      return `${encodeWords(p.name, 'Q', charset).join(' ')} <${p.address}>`;
    }
    return /[^A-Za-z0-9 ]/.test(p.name) ? `"${p.name}" <${p.address}>` : `${p.name} <${p.address}>`;
  }

  private encodedSubject(subject: string): string {
    const r = this.rng;
    const encoding = r.chance(0.5) ? 'B' : 'Q';
    const charset: Charset = isLatin1(subject) && r.chance(0.5) ? 'ISO-8859-1' : 'UTF-8';
    // Some mailers keep a reply prefix in clear text before the encoded words.
    const prefix = /^(Re|AW|RE): /.exec(subject);
    if (prefix !== null && r.chance(0.5)) {
      return foldedHeader('Subject', [prefix[0].trim(), ...encodeWords(subject.slice(prefix[0].length), encoding, charset)]);
    }
    return foldedHeader('Subject', encodeWords(subject, encoding, charset));
  }

  private fill(template: string): string {
    const r = this.rng;
    return template
      .replace(/\{num\}/g, () => String(r.int(10000, 99999)))
      .replace(/\{n\}/g, () => String(r.int(1, 9)))
      .replace(/\{first\}/g, () => r.pick(FIRST.filter(isAscii)))
      .replace(/\{date\}/g, () => `${r.int(1, 28)}.${r.int(1, 12)}.2026`);
  }

  private paragraphs(lang: Lang, count: number): string[] {
    const r = this.rng;
    const words = WORDS[lang];
    const out: string[] = [];
    for (let p = 0; p < count; p++) {
      const sentences: string[] = [];
      for (let s = r.int(1, 5); s > 0; s--) {
        const n = r.int(6, 20);
        const picked: string[] = [];
        for (let w = 0; w < n; w++) picked.push(r.pick(words));
        const sentence = picked.join(' ');
        sentences.push(`${sentence.charAt(0).toUpperCase()}${sentence.slice(1)}${r.pick(['.', '.', '.', '?', '!'])}`);
      }
      out.push(sentences.join(' '));
      if (r.chance(0.05)) out.push(r.pick(DOT_LINES));
    }
    return out;
  }

  /** A text/plain part (headers + body), as 7bit, 8bit or quoted-printable. */
  private textPart(text: string, lang: Lang, topLevel: boolean): string {
    const r = this.rng;
    const ascii = /^[\x00-\x7f]*$/.test(text);
    let charset: string;
    let encoding: string;
    let body: string;
    if (ascii && lang === 'en') {
      charset = r.chance(0.5) ? 'us-ascii' : 'UTF-8';
      encoding = '7bit';
      body = text;
    } else {
      const latin = isLatin1(text) && r.chance(0.25);
      const bytes = Buffer.from(text, latin ? 'latin1' : 'utf8');
      charset = latin ? 'ISO-8859-1' : 'UTF-8';
      if (r.chance(0.75)) {
        encoding = 'quoted-printable';
        body = quotedPrintable(bytes);
      } else {
        encoding = '8bit';
        body = bytes.toString('latin1');
      }
    }
    const format = r.chance(0.3) ? '; format=flowed' : '';
    return `Content-Type: text/plain; charset=${topLevel && r.chance(0.5) ? `"${charset}"` : charset}${format}${CRLF}`
      + `Content-Transfer-Encoding: ${encoding}${CRLF}${CRLF}${body}`;
  }

  /** A multipart/alternative with a text/plain and an Outlook-style (bloated) text/html part. */
  private alternative(text: string, paragraphs: readonly string[], quote: readonly string[], i: number): string {
    const r = this.rng;
    const boundary = `_000_${r.hex(24)}_${i}`;
    const plain = Buffer.from(text, 'utf8');
    const plainPart = `Content-Type: text/plain; charset="utf-8"${CRLF}Content-Transfer-Encoding: quoted-printable${CRLF}${CRLF}${quotedPrintable(plain)}`;
    const span = '<span style="font-size:11.0pt;font-family:&quot;Calibri&quot;,sans-serif;color:#1F497D;mso-fareast-language:EN-US">';
    const html: string[] = [
      '<html xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office" xmlns:w="urn:schemas-microsoft-com:office:word">',
      '<head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"><meta name="Generator" content="Microsoft Word 15 (filtered medium)">',
      '<style><!-- @font-face {font-family:"Cambria Math"; panose-1:2 4 5 3 5 4 6 3 2 4;} @font-face {font-family:Calibri; panose-1:2 15 5 2 2 2 4 3 2 4;}',
      'p.MsoNormal, li.MsoNormal, div.MsoNormal {margin:0cm; font-size:11.0pt; font-family:"Calibri",sans-serif; mso-fareast-language:EN-US;}',
      'a:link, span.MsoHyperlink {mso-style-priority:99; color:#0563C1; text-decoration:underline;} .MsoChpDefault {mso-style-type:export-only;}',
      '@page WordSection1 {size:612.0pt 792.0pt; margin:70.85pt 70.85pt 2.0cm 70.85pt;} div.WordSection1 {page:WordSection1;} --></style></head>',
      '<body lang="EN-US" link="#0563C1" vlink="#954F72" style="word-wrap:break-word"><div class="WordSection1">',
    ];
    for (const p of paragraphs) {
      html.push(`<p class="MsoNormal">${span}${escapeHtml(p).replace(/\n/g, '<br>')}<o:p></o:p></span></p>`);
      html.push(`<p class="MsoNormal">${span}<o:p>&nbsp;</o:p></span></p>`);
    }
    if (r.chance(0.3)) {
      html.push('<table class="MsoNormalTable" border="0" cellspacing="0" cellpadding="0" style="border-collapse:collapse">');
      for (let row = r.int(3, 25); row > 0; row--) {
        html.push(`<tr><td style="border:solid #BFBFBF 1.0pt;padding:0cm 5.4pt 0cm 5.4pt"><p class="MsoNormal">${r.int(100000, 999999)}</p></td>`
          + `<td style="border:solid #BFBFBF 1.0pt;padding:0cm 5.4pt 0cm 5.4pt"><p class="MsoNormal">${escapeHtml(r.pick(WORDS.en))} ${escapeHtml(r.pick(WORDS.en))}</p></td>`
          + `<td style="border:solid #BFBFBF 1.0pt;padding:0cm 5.4pt 0cm 5.4pt"><p class="MsoNormal" align="right">${r.int(1, 999)}.${r.int(10, 99)} EUR</p></td></tr>`);
      }
      html.push('</table>');
    }
    if (quote.length > 0) {
      html.push('<div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm"><blockquote style="margin-left:6pt">');
      for (const line of quote) html.push(`<p class="MsoNormal">${escapeHtml(line)}</p>`);
      html.push('</blockquote></div>');
    }
    html.push('</div></body></html>');
    const htmlBytes = Buffer.from(html.join(CRLF) + CRLF, 'utf8');
    const htmlPart = r.chance(0.7)
      ? `Content-Type: text/html; charset="utf-8"${CRLF}Content-Transfer-Encoding: quoted-printable${CRLF}${CRLF}${quotedPrintable(htmlBytes)}`
      : `Content-Type: text/html; charset="utf-8"${CRLF}Content-Transfer-Encoding: base64${CRLF}${CRLF}${base64Lines(htmlBytes)}`;
    return `Content-Type: multipart/alternative;${CRLF}\tboundary="${boundary}"${CRLF}${CRLF}`
      + `--${boundary}${CRLF}${plainPart}${CRLF}--${boundary}${CRLF}${htmlPart}${CRLF}--${boundary}--${CRLF}`;
  }

  /** A base64 attachment of 10 KB to 1 MB, skewed towards the small end (median about 28 KB, mean about 125 KB). */
  private attachmentPart(): string {
    const r = this.rng;
    const size = Math.round(10 * 1024 * 102.4 ** (r.float() ** 2.2));
    this.stats.attachmentBytes += size;
    const { filename, type } = r.pick(ATTACHMENTS)(r);
    let name: string;
    if (isAscii(filename)) {
      name = `;${CRLF}\tname="${filename}"`;
    } else {
      name = `;${CRLF}\tname="${encodeWords(filename, 'B', 'UTF-8').join(' ')}"`;
    }
    const disposition = isAscii(filename)
      ? `attachment;${CRLF}\tfilename="${filename}"; size=${size}`
      : `attachment;${CRLF}\tfilename*=UTF-8''${encodeURIComponent(filename)}; size=${size}`;
    return `Content-Type: ${type}${name}${CRLF}Content-Disposition: ${disposition}${CRLF}`
      + `Content-Transfer-Encoding: base64${CRLF}${CRLF}${base64Lines(this.content.bytes(size))}`;
  }
}

/** `count` messages of the mix, all in memory. */
export function generateMix(count: number, seed = 1): { messages: Buffer[]; stats: MixStats } {
  const generator = new BenchMailGenerator(seed);
  const messages: Buffer[] = [];
  for (let i = 0; i < count; i++) messages.push(generator.next().raw);
  return { messages, stats: generator.stats };
}

/** A small plain message (about 1 KB), for mailboxes that only need to hold many messages. */
export function smallPlainMessage(index: number, seed = 1): Buffer {
  const r = new Prng((seed * 1_000_003 + index) >>> 0);
  const date = rfc5322Date(Date.UTC(2026, 0, 1) + index * 60_000, 60);
  const words = WORDS.en;
  const lines: string[] = [];
  for (let l = 0; l < 10; l++) {
    const picked: string[] = [];
    for (let w = 0; w < 10; w++) picked.push(r.pick(words));
    lines.push(picked.join(' '));
  }
  return Buffer.from([
    `From: Sender ${index} <sender${index}@customer.example>`,
    'To: Support <support@helpdesk.example>',
    `Subject: Small message ${index}`,
    `Date: ${date}`,
    `Message-ID: <small.${seed}.${index}.${r.hex(8)}@customer.example>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=us-ascii',
    'Content-Transfer-Encoding: 7bit',
    '',
    ...lines,
    '',
  ].join(CRLF), 'latin1');
}

/** One message with a single base64 attachment of `attachmentBytes` pseudo-random bytes. */
export function largeAttachmentMessage(attachmentBytes: number, seed = 1): Buffer {
  const r = new Prng(seed ^ 0x5eed1a29);
  const boundary = `----=_Part_large_${r.hex(16)}`;
  const head = [
    'From: Big Sender <big.sender@customer.example>',
    'To: Support <support@helpdesk.example>',
    `Subject: Scan of the whole archive (${Math.round(attachmentBytes / 1024 / 1024)} MB)`,
    `Date: ${rfc5322Date(Date.UTC(2026, 1, 2, 9, 30), 60)}`,
    `Message-ID: <large.${seed}.${r.hex(12)}@customer.example>`,
    'MIME-Version: 1.0',
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 7bit',
    '',
    'Here is the archive you asked for.',
    '',
    `--${boundary}`,
    'Content-Type: application/zip; name="archive.zip"',
    `Content-Disposition: attachment; filename="archive.zip"; size=${attachmentBytes}`,
    'Content-Transfer-Encoding: base64',
    '',
    '',
  ].join(CRLF);
  return Buffer.concat([
    Buffer.from(head, 'latin1'),
    Buffer.from(base64Lines(r.bytes(attachmentBytes)), 'latin1'),
    Buffer.from(`${CRLF}--${boundary}--${CRLF}`, 'latin1'),
  ]);
}
