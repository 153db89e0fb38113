#!/usr/bin/env python3
"""A second, independent reading of Subject and From, for the corpus conformance run.

mailpoll reads headers with mailparser (Node). This script reads the same bytes with Python's
standard library `email` package, which shares no code with it, so that the two can be compared.

stdin:  JSON lines {"id": ..., "raw_b64": "..."}
stdout: JSON lines {"id", "subject", "from_address", "from_name", "error", "method"}
        subject/from_* are null when the header is absent (or holds no address).

Reading rules (kept deliberately plain, so that a disagreement means something):
- `email.message_from_bytes(raw, policy=email.policy.default)`; Subject is the decoded
  unstructured value (RFC 2047 encoded-words decoded), From the first address that has an
  addr-spec (group members included), as `local@domain` without quoting.
- Header bytes that are not ASCII are taken as UTF-8 (RFC 6532) and, when they are not valid
  UTF-8, as Windows-1252 (what mail clients do with legacy 8-bit headers).
- If the policy.default reading raises, the legacy reading is used instead:
  `email.header.decode_header` + `make_header` for Subject and `email.utils.getaddresses` for
  From ("method": "compat32"). Errors of both readings are returned in "error".
"""
import base64
import email
import email.header
import email.policy
import email.utils
import json
import sys


def fix_surrogates(text):
    """policy.default keeps undecodable header bytes as lone surrogates: decode them properly."""
    if text is None:
        return None
    try:
        text.encode('utf-8')
        return text
    except UnicodeEncodeError:
        pass
    data = text.encode('utf-8', 'surrogateescape')
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError:
        return data.decode('cp1252', 'replace')


def read_default(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    subject = msg['subject']
    subject = None if subject is None else fix_surrogates(str(subject))
    address = None
    name = None
    header = msg['from']
    if header is not None:
        for a in header.addresses:
            if a.username or a.domain:
                address = fix_surrogates(a.username + ('@' + a.domain if a.domain else ''))
                name = fix_surrogates(a.display_name) or None
                break
    return subject, address, name


def decode_words(value):
    parts = email.header.decode_header(value)
    return str(email.header.make_header(parts))


def read_compat(raw):
    msg = email.message_from_bytes(raw)  # compat32
    subject = msg.get('subject')
    if subject is not None:
        subject = fix_surrogates(decode_words(str(subject)))
    address = None
    name = None
    values = msg.get_all('from') or []
    for display, addr in email.utils.getaddresses([str(v) for v in values]):
        if addr:
            address = fix_surrogates(addr)
            name = fix_surrogates(decode_words(display)) if display else None
            break
    return subject, address, name


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        item = json.loads(line)
        raw = base64.b64decode(item['raw_b64'])
        out = {'id': item['id'], 'method': 'default', 'error': None}
        try:
            subject, address, name = read_default(raw)
        except Exception as err:  # noqa: BLE001 - any failure falls back to the legacy reading
            out['method'] = 'compat32'
            out['error'] = f'policy.default: {type(err).__name__}: {err}'
            try:
                subject, address, name = read_compat(raw)
            except Exception as err2:  # noqa: BLE001
                out['error'] += f'; compat32: {type(err2).__name__}: {err2}'
                subject, address, name = None, None, None
        out.update(subject=subject, from_address=address, from_name=name)
        sys.stdout.write(json.dumps(out, ensure_ascii=False) + '\n')
    sys.stdout.flush()


if __name__ == '__main__':
    main()
