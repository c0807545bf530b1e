#!/usr/bin/env python3
"""Writes test/fuzz/corpus/: the seed corpus of real-shaped reports (domain.md
section 2 and the variants of issue 7), in every encoding a client uses, and
the documents that must be rejected.  The files are committed; rerun this only
to change them (python3 test/fuzz/make_corpus.py)."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")

HEADER = """<ReportHeader><Identification><Machine><ClientInstalled>1</ClientInstalled>
<ClientType>1</ClientType><ClientID>{cid}</ClientID>
<ClientVersion>5.00.9122.1000</ClientVersion><NetBIOSName>WKS-0042</NetBIOSName>
<CodePage>437</CodePage><SystemDefaultLCID>1033</SystemDefaultLCID>{prio}
</Machine></Identification><ReportDetails><ReportContent>State Message Data</ReportContent>
<ReportType>Full</ReportType><Date>20261110183000.000000+000</Date><Version>1.0</Version>
<Format>1.0</Format></ReportDetails></ReportHeader>"""

MESSAGE = """<StateMessage MessageTime="{time}"{serial}>
<Topic ID="{topic}" Type="{ttype}" IDType="3" User="" UserSID=""/>
<State ID="{state}" Criticality="0"/>{extra}</StateMessage>
"""

PARAMS1 = '<UserParameters Flags="0" Count="1"><Param>200</Param>\n</UserParameters>'


def report(messages, cid="GUID:6B0C9A51-3D1E-4F7A-9C21-0A1B2C3D4E5F",
           prio="<Priority>5</Priority>", decl=""):
    return (decl + "<Report>" + HEADER.format(cid=cid, prio=prio) +
            "<ReportBody>\n" + "".join(messages) + "</ReportBody></Report>\n")


def msg(time="20261110181502.120000+000", serial=41,
        topic="3F2504E0-4F89-11D3-9A0C-0305E82C3301", ttype=500, state=2,
        extra=PARAMS1):
    s = "" if serial is None else ' SerialNumber="%s"' % serial
    return MESSAGE.format(time=time, serial=s, topic=topic, ttype=ttype,
                          state=state, extra=extra)


DECL8 = '<?xml version="1.0" encoding="UTF-8"?>\n'
DECL16 = '<?xml version="1.0" encoding="UTF-16"?>\n'


def write(name, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def main():
    os.makedirs(OUT, exist_ok=True)
    example = report([msg()])
    write("example.xml", example)
    write("example-decl-utf8.xml", DECL8 + example)
    write("example-decl-utf16-as-utf8.xml", DECL16 + example)
    write("utf8-bom-decl-utf16.xml", b"\xef\xbb\xbf" + (DECL16 + example).encode())
    for enc, bom, tag in (("utf-16-le", b"\xff\xfe", "le"),
                          ("utf-16-be", b"\xfe\xff", "be")):
        body = (DECL16 + example).encode(enc)
        write("utf16%s-bom.xml" % tag, bom + body)
        write("utf16%s-nobom.xml" % tag, body)
        write("utf16%s-nobom-nodecl.xml" % tag, example.encode(enc))
        write("utf16%s-truncated.xml" % tag, (bom + body)[:301])
        # incomplete characters after the root: libxml2 2.9 alone drops them
        write("utf16%s-truncated-odd-byte.xml" % tag, bom + body + b"\n")
        write("utf16%s-truncated-surrogate.xml" % tag, bom + body + "\n".encode(enc)
              + ("\ud800".encode(enc, "surrogatepass")))
    write("cdata-details.xml", report([msg(extra=
        '<StateDetails Type="2"><![CDATA[<Detail><Error Code="0x80070005">'
        'Access &amp; denied</Error></Detail>]]></StateDetails>' + PARAMS1)]))
    write("details-mixed.xml", report([msg(extra=
        '<StateDetails Type="1">text &lt;x&gt; <![CDATA[a]]]]><![CDATA[>b]]> tail'
        '<Inner>ignored</Inner></StateDetails>')]))
    write("many-params.xml", report([msg(ttype=301, state=6, extra=
        '<UserParameters Flags="0" Count="3"><Param/><Param>0x80240022</Param>'
        '<Param></Param><Param>d</Param><Param> e </Param><Param>f</Param>'
        '<Param>g</Param></UserParameters>')]))
    write("no-serial.xml", report([msg(serial=None, ttype=800, state=400, extra=""),
                                   msg(serial=None, ttype=9003, state=1, extra="")]))
    write("namespaces.xml",
          '<r:Report xmlns:r="urn:sms" xmlns="urn:d" xmlns:a="urn:a"><ReportHeader>'
          '<Identification><r:Machine><ClientID a:kind="guid" Type="1">GUID: '
          '6B0C9A51-3D1E-4F7A-9C21-0A1B2C3D4E5F</ClientID></r:Machine></Identification>'
          '</ReportHeader>\n  <ReportBody>\n    <StateMessage a:MessageTime='
          '"20261110181502.120000+000" a:SerialNumber="7">\n      <x:Topic xmlns:x="urn:x" '
          'x:ID="t1" Type="500" IDType="3"/>\n      <State ID="3"/>\n    </StateMessage>\n'
          '  </ReportBody></r:Report>')
    times = ["20261110181502.120000-300", "20261110181502.120000+060",
             "20261110181502+000", "20261110181502.+000", "20261110181502.1+000",
             "20261110181502.12+000", "20261110181502.123+000",
             "20261110181502.1234+000", "20261110181502.12345+000",
             "20261110181502.123456-0330", "20240229235959.999999+000"]
    write("offsets-fractions.xml",
          report([msg(time=t, serial=100 + i, topic="T%d" % i, extra="")
                  for i, t in enumerate(times)], prio=""))
    resync = [msg(serial=500 + i, topic="U%04d" % i, ttype=(500, 402, 301)[i % 3],
                  state=i % 4, extra="") for i in range(40)]
    resync.append(msg(serial=540, topic="resync", ttype=700, state=2, extra=""))
    write("resync-answer.xml", report(resync, prio="<Priority>10</Priority>"))
    write("bad-values.xml", report([
        msg(time="00000000000000.000000+000", serial="x1", extra=""),
        msg(time="20230229000000.000000+000", serial="99999999999999999999", extra=""),
        msg(time="20261110181502.1234567+000", serial="-1", ttype="5OO", extra=""),
        msg(serial=" 42 ", state="", extra=""),
        '<StateMessage SerialNumber="1"><State ID="1"/></StateMessage>',
        '<StateMessage SerialNumber="2"><Topic ID="t"/></StateMessage>']))
    write("entities.xml", report([msg(topic="a&amp;b&lt;&#38;&#x26;c&quot;&#x20AC;",
        extra='<UserParameters><Param>&lt;&amp;&#65;&#x20AC;&apos;&gt;</Param>'
              '</UserParameters>')]))
    write("client-id-attributes.xml", report([msg()], cid="6B0C9A51-3D1E-4F7A-9C21-0A1B2C3D4E5F")
          .replace("<ClientID>", '<ClientID Type="1" Source="SMS">'))
    write("unknown-elements.xml", report([msg(extra=PARAMS1 + '<Future a="1"><Param>x</Param>'
                                                  '</Future><!-- comment --><?pi data?>')])
          .replace("<ReportBody>", '<Extra><StateMessage/></Extra><ReportBody x="1">'))
    write("iso-8859-1.xml", '<?xml version="1.0" encoding="ISO-8859-1"?>'.encode() +
          report([msg()]).replace("WKS-0042", "WKS-\xc4").encode("latin-1"))
    deep = "<a>" * 63 + "</a>" * 63
    write("deep-64.xml", report([msg()]).replace("</Report>", deep + "</Report>"))
    write("deep-65.xml", report([msg()]).replace("</Report>", "<a>" + deep + "</a></Report>"))
    write("doctype-billion-laughs.xml",
          '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
          + "".join(' <!ENTITY lol%d "%s">\n' % (i, ("&lol%s;" % ("" if i == 1 else i - 1)) * 10)
                    for i in range(1, 10))
          + ']>\n' + report([msg(topic="&lol9;")]))
    write("doctype-external-entity.xml",
          '<?xml version="1.0"?>\n<!DOCTYPE Report [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
          + report([msg()], cid="&xxe;"))
    write("doctype-system.xml", '<!DOCTYPE Report SYSTEM "http://127.0.0.1:1/r.dtd">'
          + report([msg()]))
    write("truncated.xml", example[:len(example) // 2])
    write("utf8-truncated-sequence.xml", example.encode() + b"\xe2\x82")
    write("wrong-root.xml", example.replace("<Report>", "<Rapport>").replace("</Report>", "</Rapport>"))
    write("no-client-id.xml", report([msg()]).replace("<ClientID>GUID:6B0C9A51-3D1E-4F7A-9C21-0A1B2C3D4E5F</ClientID>", ""))
    write("empty-client-id.xml", report([msg()], cid="  "))
    write("undeclared-entity.xml", report([msg(topic="&nope;")]))
    write("empty.xml", "")
    # libxml2 2.9 ends the input at a NUL byte after the root element
    write("nul-trailing-junk.xml", example.encode() + b"\x00<junk/>")
    # reproduces the first bug found (by unit.c's allocator loop): the last
    # byte 0xFC makes the harness cap the text parse at 4032 bytes, which
    # runs out at MessageTime; reading SerialNumber then read the input
    # buffer that stopping the parser had freed
    write("oom-attributes-trailing-junk.xml",
          ('<Report><ReportHeader><Identification><Machine><ClientID>c</ClientID>'
           '</Machine></Identification></ReportHeader><ReportBody><StateMessage '
           'MessageTime="%s" SerialNumber="1"/></ReportBody></Report>'
           % ("2" * 1200)).encode() + b"\xfc")


if __name__ == "__main__":
    main()
